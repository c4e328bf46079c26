// Unit tests cover the pure modules (SSE parsing, windowing, log buffering, formatting), which
// import nothing from JupyterLab, so ts-jest needs no ESM transform of @jupyterlab packages.
module.exports = {
  testEnvironment: 'jsdom',
  testRegex: 'test/.*\\.spec\\.ts$',
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
