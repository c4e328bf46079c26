// Unit tests cover the modules that import nothing from JupyterLab at run time (SSE parsing,
// windowing, log buffering, formatting, the dialog body on @lumino/widgets), so ts-jest needs no ESM
// transform of @jupyterlab packages.
module.exports = {
  testEnvironment: 'jsdom',
  setupFiles: ['<rootDir>/test/jsdom-setup.js'],
  testRegex: 'test/.*\\.spec\\.ts$',
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
