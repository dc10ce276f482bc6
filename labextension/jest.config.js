// Unit tests of the pure TypeScript (formatting, ring buffer, chart scaling, log filter,
// the message model); they run in node, no browser. The browser tests live in tests/ui.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  moduleFileExtensions: ['ts', 'js', 'json']
};
