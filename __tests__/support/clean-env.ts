// Tests set the env they need; a developer's own LLM_GUARD_* settings must not leak in.
for (const name of Object.keys(process.env)) if (name.startsWith('LLM_GUARD_')) delete process.env[name];
