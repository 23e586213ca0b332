// Lint and format in one pass, configured as the Effect repositories do: ESLint's and typescript-eslint's
// recommended rules, and dprint (through @effect/dprint) as the formatter. No rule needs type information,
// so `npm run lint` stays fast enough to run in `npm test`.
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import importX from "eslint-plugin-import-x"
import sortDestructureKeys from "eslint-plugin-sort-destructure-keys"
import { defineConfig } from "eslint/config"
import tseslint from "typescript-eslint"

export default defineConfig(
  {
    ignores: ["**/dist/**", "**/.tmp/**", "**/node_modules/**"]
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  effectEslint.configs.dprint,
  {
    files: ["**/*.ts", "**/*.mjs"],
    plugins: {
      "import-x": importX,
      "sort-destructure-keys": sortDestructureKeys
    },
    languageOptions: {
      parser: tseslint.parser,
      ecmaVersion: 2022,
      sourceType: "module"
    },
    rules: {
      // The rule choices below are those of the Effect repository. Off: what tsc checks already
      // (noFallthroughCasesInSwitch, noUnusedLocals), and what fights Effect code (a generator given to
      // Effect.gen need not yield; destructuring and rest/spread arguments are a choice, not a rule).
      "no-fallthrough": "off",
      "no-irregular-whitespace": "off",
      "object-shorthand": "error",
      "prefer-destructuring": "off",
      "sort-imports": "off",
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name='push'] > SpreadElement.arguments",
          message: "Do not use spread arguments in Array.push"
        }
      ],
      "no-unused-vars": "off",
      "require-yield": "off",
      "prefer-rest-params": "off",
      "prefer-spread": "off",

      "import-x/first": "error",
      "import-x/newline-after-import": "error",
      "import-x/no-duplicates": "error",
      "sort-destructure-keys/sort-destructure-keys": "error",

      "@typescript-eslint/array-type": ["warn", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/consistent-type-imports": "warn",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Effect's own code turns these off: its types use `any`, `{}` and `Function` in signatures on purpose,
      // `!` where a lookup is known to succeed, and namespaces to group a module's types.
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-unsafe-function-type": "off",
      "@typescript-eslint/no-wrapper-object-types": "off",
      "@typescript-eslint/ban-ts-comment": "off",
      "@typescript-eslint/explicit-function-return-type": "off",
      "@typescript-eslint/explicit-module-boundary-types": "off",
      "@typescript-eslint/no-array-constructor": "off",
      "@typescript-eslint/no-use-before-define": "off",
      "@typescript-eslint/no-namespace": "off",

      "@effect/dprint": [
        "error",
        {
          config: {
            indentWidth: 2,
            lineWidth: 120,
            semiColons: "asi",
            quoteStyle: "alwaysDouble",
            trailingCommas: "never",
            operatorPosition: "maintain",
            "arrowFunction.useParentheses": "force"
          }
        }
      ]
    }
  },
  {
    // Plain Node scripts: .mjs files are not type-checked, so ESLint is told Node's globals.
    files: ["**/*.mjs"],
    languageOptions: {
      globals: { console: "readonly", process: "readonly", URL: "readonly" }
    }
  },
  {
    // The library writes nothing to the console (tests and examples print their reports on purpose), and
    // imports Effect by module path ("effect/Effect"), not from the package barrel.
    files: ["src/**/*.ts"],
    rules: {
      "no-console": "error",
      "@effect/no-import-from-barrel-package": [
        "error",
        { packageNames: ["effect", "@effect/platform", "@effect/sql"] }
      ]
    }
  }
)
