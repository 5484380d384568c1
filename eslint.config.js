// ESLint flat config: @eslint/js recommended + typescript-eslint's type-aware rules over every
// TypeScript folder that tsconfig.json type-checks. Layout is prettier's job, not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // A `default:` clause is a deliberate catch-all (e.g. "any other errno"), not a missed case.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // Functions are `async` to meet Promise-returning contracts (Fastify hooks, Bolt's receiver, Kysely's provider).
      '@typescript-eslint/require-await': 'off',
      // Every String(unknown) here is a last-resort rendering after JSON.stringify or a typeof check.
      '@typescript-eslint/no-base-to-string': 'off',
      // Abort reasons are passed on as they are: AbortSignal.reason is typed `any` by the DOM lib.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
    },
  },
  {
    // Kysely's own convention: migrations (and the migrator) take `Kysely<any>`, as the schema they see changes over time.
    files: ['migrations/**/*.ts', 'src/db/migrate.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Tests and the demo read HTTP answers as JSON (`any`) and check them at run time with expect/asserts.
    files: ['test/**/*.ts', 'demo/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // This file is plain JavaScript outside tsconfig.json: no type information for it.
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
