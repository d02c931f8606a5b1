import Anthropic from '@anthropic-ai/sdk';
import { GuardConfigError, SETTINGS, createGuardedClient } from '../lib';
import { allowedText, type Setting } from '../lib/config/settings';
import type { Logger } from '../lib/logger';
import { CLAUDE, anthropicFor, hello, useFakeProvider, withEnv } from './support/clients';

const fake = useFakeProvider();

/** Values each kind of setting must refuse: [as an env var string, as an option value]. */
function badValues(setting: Setting): Array<[string, unknown]> {
  const t = setting.type;
  switch (t.kind) {
    case 'boolean':
      return [['maybe', 'yes'], ['2', 1]];
    case 'integer':
      return [['abc', 'abc'], ['1.5', 1.5], [String(t.min - 1), t.min - 1], [String(t.max + 1), t.max + 1], ['-1', Number.NaN]];
    case 'number':
      return [['abc', '10'], [String(t.exclusiveMin ? t.min : t.min - 1), t.exclusiveMin ? t.min : t.min - 1], [String(t.max * 10), Infinity], ['-3', -3]];
    case 'enum':
      return [['bogus', 'bogus'], ['1', 1]];
    case 'string':
      // A free string (a file path) is checked when used: only the option's type is checked here.
      return t.pattern ? [['not valid! ~', 'not valid! ~'], ['http://x', 42]] : [['', 42], ['', '']];
    case 'budget':
    case 'quota':
      return [['-5', -5], ['abc', 'abc'], ['0', 0]];
    case 'window':
      return [['5 fortnights', '5 fortnights'], ['10ms', 10], ['abc', 'abc']];
  }
}

function optionAt(path: string, value: unknown): Record<string, unknown> {
  const keys = path.split('.');
  const root: Record<string, unknown> = {};
  let cur = root;
  for (const key of keys.slice(0, -1)) cur = (cur[key] = {}) as Record<string, unknown>;
  cur[keys[keys.length - 1]!] = value;
  return root;
}

function configError(fn: () => unknown): GuardConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(GuardConfigError);
    return error as GuardConfigError;
  }
  throw new Error('expected a GuardConfigError');
}

describe.each((SETTINGS as readonly Setting[]).map((s) => [s.env, s] as const))('setting %s', (_name, setting) => {
  const envVar = `LLM_GUARD_${setting.env}`;
  const cases = badValues(setting);

  const envCases = cases.map(([env]) => [env]).filter(([env]) => env !== '');
  if (envCases.length) test.each(envCases)(`${envVar}=%p is refused at creation, naming the var, the value and what is allowed`, async (value) => {
    await withEnv({ [envVar]: value }, () => {
      const error = configError(() => createGuardedClient(anthropicFor(fake())));
      expect(error.setting).toBe(envVar);
      expect(error.message).toContain(envVar);
      expect(error.message).toContain(JSON.stringify(value));
      expect(error.message).toContain(allowedText(setting.type));
    });
  });

  if (!setting.envOnly) {
    test.each(cases.map(([, option]) => [option]))(`option ${setting.path} = %p is refused at creation`, (value) => {
      const error = configError(() => createGuardedClient(anthropicFor(fake()), optionAt(setting.path, value)));
      expect(error.setting).toBe(setting.path);
      expect(error.message).toContain(allowedText(setting.type));
    });
  }

  test('its default is valid and reported in status()', () => {
    const client = createGuardedClient(anthropicFor(fake()));
    expect(client.guard.status().sources[setting.path]).toBe('default');
  });
});

describe('precedence: option > LLM_GUARD_<PROVIDER>_<NAME> > LLM_GUARD_<NAME> > default', () => {
  test('each level wins over the next', async () => {
    await withEnv({ LLM_GUARD_MAX_CONCURRENT: '3', LLM_GUARD_ANTHROPIC_MAX_CONCURRENT: '4', LLM_GUARD_OPENAI_MAX_CONCURRENT: '99' }, () => {
      const fromProviderEnv = createGuardedClient(anthropicFor(fake()));
      expect(fromProviderEnv.guard.status().config).toMatchObject({ limits: { maxConcurrent: 4 } });
      expect(fromProviderEnv.guard.status().sources['limits.maxConcurrent']).toBe('LLM_GUARD_ANTHROPIC_MAX_CONCURRENT');
      const fromOption = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 5 } });
      expect(fromOption.guard.status().config).toMatchObject({ limits: { maxConcurrent: 5 } });
      expect(fromOption.guard.status().sources['limits.maxConcurrent']).toBe('option');
    });
    await withEnv({ LLM_GUARD_MAX_CONCURRENT: '3' }, () => {
      expect(createGuardedClient(anthropicFor(fake())).guard.status().config).toMatchObject({ limits: { maxConcurrent: 3 } });
    });
    expect(createGuardedClient(anthropicFor(fake())).guard.status().config).toMatchObject({ limits: { maxConcurrent: 10 } });
  });

  test('env values are parsed leniently where it is safe: true/1/yes, enum case', async () => {
    await withEnv({ LLM_GUARD_ADAPTIVE: 'No', LLM_GUARD_ON_OVER_BUDGET: 'CLAMP', LLM_GUARD_BUDGET_USER_USD: '2.5', LLM_GUARD_BUDGET_USER_WINDOW: '1d' }, () => {
      const config = createGuardedClient(anthropicFor(fake())).guard.status().config as Record<string, Record<string, unknown>>;
      expect(config.limits!.adaptive).toBe(false);
      expect(config.cost!.onOverBudget).toBe('clamp');
      expect(config.cost!.budgets).toEqual([
        { scope: 'global', limitUsd: 50, window: 3_600_000, windowText: '1h', enforcement: 'hard' },
        { scope: 'user', limitUsd: 2.5, window: 86_400_000, windowText: '1d', enforcement: 'hard' },
      ]);
    });
  });

  test('LLM_GUARD_BUDGET_GLOBAL_USD=none removes the default global budget', async () => {
    await withEnv({ LLM_GUARD_BUDGET_GLOBAL_USD: 'none' }, () => {
      expect((createGuardedClient(anthropicFor(fake())).guard.status().config as { cost: { budgets: unknown[] } }).cost.budgets).toEqual([]);
    });
  });

  test('retry: n is shorthand for { retries: n }; breaker: false disables it', () => {
    const config = createGuardedClient(anthropicFor(fake()), { retry: 7, breaker: false }).guard.status().config;
    expect(config).toMatchObject({ retry: { retries: 7, minDelayMs: 1000 }, breaker: { enabled: false } });
  });
});

describe('mistakes are caught at creation', () => {
  test('an unknown option names the nearest group and what is allowed', () => {
    const error = configError(() => createGuardedClient(anthropicFor(fake()), { limits: { maxConcurent: 3 } } as never));
    expect(error.message).toContain('limits.maxConcurent');
    expect(error.message).toContain('maxConcurrent');
  });

  test('retry.minDelayMs above retry.maxDelayMs', () => {
    const error = configError(() => createGuardedClient(anthropicFor(fake()), { retry: { minDelayMs: 5000, maxDelayMs: 100 } }));
    expect(error.setting).toBe('retry.maxDelayMs');
  });

  test.each([
    [[{ scope: 'planet', limitUsd: 1 }], 'cost.budgets[0].scope'],
    [[{ scope: 'user', limitUsd: -1 }], 'cost.budgets[0].limitUsd'],
    [[{ scope: 'user', limitUsd: 1, window: '2 fortnights ago' }], 'cost.budgets[0].window'],
    [[{ scope: 'user', limitUsd: 1, warnAt: 2 }], 'cost.budgets[0].warnAt'],
    [[{ scope: 'user', limitUsd: 1 }, { scope: 'user', limitUsd: 2 }], 'cost.budgets[1].scope'],
    ['lots', 'cost.budgets'],
  ])('cost.budgets %p → %s', (budgets, setting) => {
    expect(configError(() => createGuardedClient(anthropicFor(fake()), { cost: { budgets: budgets as never } })).setting).toBe(setting);
  });

  test.each([
    [{ 'my-model': { inputPerMTok: 1 } }, 'cost.prices.my-model.outputPerMTok'],
    [{ 'my-model': { inputPerMTok: -1, outputPerMTok: 1 } }, 'cost.prices.my-model.inputPerMTok'],
    [{ 'my-model': { inputPerMTok: 1, outputPerMTok: 1, perRequest: 2 } }, 'cost.prices.my-model.perRequest'],
  ])('cost.prices %p → %s', (prices, setting) => {
    expect(configError(() => createGuardedClient(anthropicFor(fake()), { cost: { prices: prices as never } })).setting).toBe(setting);
  });

  test('limits.perScope is checked key by key', () => {
    expect(configError(() => createGuardedClient(anthropicFor(fake()), { limits: { perScope: { user: { requestsPerMinute: 0 } } } })).setting).toBe(
      'limits.perScope.user.requestsPerMinute',
    );
    expect(configError(() => createGuardedClient(anthropicFor(fake()), { limits: { perScope: { planet: {} } as never } })).setting).toBe('limits.perScope.planet');
  });

  test('a missing prices file names the file', async () => {
    await withEnv({ LLM_GUARD_PRICES_FILE: '/nonexistent/prices.json' }, () => {
      const error = configError(() => createGuardedClient(anthropicFor(fake())));
      expect(error.message).toContain('/nonexistent/prices.json');
    });
  });

  test('not a client, a guarded client, bad provider, bad logger', () => {
    expect(configError(() => createGuardedClient(42 as never)).setting).toBe('client');
    expect(configError(() => createGuardedClient({ some: 'object' })).setting).toBe('client');
    const guarded = createGuardedClient(anthropicFor(fake()));
    expect(configError(() => createGuardedClient(guarded)).message).toContain('already guarded');
    expect(configError(() => createGuardedClient(anthropicFor(fake()), { provider: 'gemini' as never })).setting).toBe('provider');
    expect(configError(() => createGuardedClient(anthropicFor(fake()), { logger: console.log as never })).setting).toBe('logger');
  });

  test('LLM_GUARD_* vars that name no setting are reported once as a warning', async () => {
    const warnings: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (fields) => warnings.push(JSON.stringify(fields)), error() {} };
    await withEnv({ LLM_GUARD_MAX_CONCURENT: '3' }, () => {
      createGuardedClient(anthropicFor(fake()), { logger });
    });
    expect(warnings).toEqual([JSON.stringify({ vars: ['LLM_GUARD_MAX_CONCURENT'] })]);
  });
});

describe('updateConfig', () => {
  test('is validated like construction and changes nothing when refused', () => {
    const client = createGuardedClient(anthropicFor(fake()));
    expect(() => client.guard.updateConfig({ limits: { maxConcurrent: 0 } })).toThrow(GuardConfigError);
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 10 } });
    client.guard.updateConfig({ limits: { maxConcurrent: 2 }, retry: 1 });
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 2 }, retry: { retries: 1 } });
    client.guard.updateConfig({ limits: { maxQueue: 5 } });
    expect(client.guard.status().config).toMatchObject({ limits: { maxConcurrent: 2, maxQueue: 5 } });
  });

  test('applies to the next call (per-call cap)', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    await client.messages.create({ model: CLAUDE, max_tokens: 100, messages: hello });
    client.guard.updateConfig({ cost: { maxCostPerCallUsd: 0.0001 } });
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 100, messages: hello })).rejects.toMatchObject({ code: 'budget_exceeded' });
    expect(fake().stats.requests).toBe(1);
  });
});

describe('LLM_GUARD_ENABLED=false', () => {
  test("is the plain SDK client: the SDK's own retries, no guard", async () => {
    await withEnv({ LLM_GUARD_ENABLED: 'false' }, async () => {
      const client = createGuardedClient(anthropicFor(fake(), { maxRetries: 1 }), { cost: { maxCostPerCallUsd: 0.000001 } });
      expect(client.guard.status().enabled).toBe(false);
      expect(client.maxRetries).toBe(1);
      fake().fault({ status: 500, headers: { 'retry-after-ms': '1' } });
      // Over the per-call cap and failing once: the plain SDK retries and succeeds.
      const message = await client.messages.create({ model: CLAUDE, max_tokens: 1000, messages: hello });
      expect(message.usage.output_tokens).toBe(16);
      expect(fake().stats.requests).toBe(2);
      expect(client.guard.status().totals.calls).toBe(0);
      expect(client).toBeInstanceOf(Anthropic);
    });
  });
});

describe('Distributed mode settings', () => {
  test('LLM_GUARD_REDIS_URL turns on the shared state; its password never shows', async () => {
    const client = await withEnv({ LLM_GUARD_REDIS_URL: 'redis://app:s3cret@127.0.0.1:1', LLM_GUARD_REDIS_FAILURE: 'reject', LLM_GUARD_LOG_LEVEL: 'silent' }, () =>
      createGuardedClient(anthropicFor(fake())),
    );
    const status = client.guard.status();
    expect(status.shared).toMatchObject({ where: 'redis://***@127.0.0.1:1', prefix: 'guarded-llm:{default}:' });
    expect(status.sources.redis).toBe('LLM_GUARD_REDIS_URL');
    expect(status.config.redisFailure).toBe('reject');
    expect(JSON.stringify(status)).not.toContain('s3cret');
    await client.guard.close();
  });

  test('name and redis are fixed for the life of a client', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    expect(() => client.guard.updateConfig({ name: 'other' })).toThrow(GuardConfigError);
    expect(() => client.guard.updateConfig({ redis: 'redis://127.0.0.1:1' })).toThrow(/fixed for the life of the client/);
    await client.guard.close();
  });
});
