/*
 * The package version, as a constant so that bundles and the standalone binary need no
 * package.json at run time. test/unit/version.test.ts keeps it equal to package.json's.
 */
export const VERSION = '0.1.0';
