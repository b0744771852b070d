// The Wasm client's size over the wire: compresses FILE with brotli at quality 11 (as the
// server precompresses the site) and fails when that exceeds BUDGET bytes.
// Usage: node scripts/wasm-size.mjs FILE BUDGET
import { readFileSync } from 'node:fs';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const [file, budgetArg] = process.argv.slice(2);
const budget = Number(budgetArg);
if (!file || !Number.isInteger(budget) || budget <= 0) {
  console.error('usage: node scripts/wasm-size.mjs FILE BUDGET_BYTES');
  process.exit(2);
}

let plain;
try {
  plain = readFileSync(file);
} catch (e) {
  console.error(`wasm-size: cannot read ${file}: ${e.message}`);
  process.exit(2);
}
const brotli = brotliCompressSync(plain, {
  params: {
    [constants.BROTLI_PARAM_QUALITY]: 11,
    [constants.BROTLI_PARAM_SIZE_HINT]: plain.length,
  },
}).length;
const gzip = gzipSync(plain, { level: 9 }).length;
const share = ((brotli / budget) * 100).toFixed(1);
console.log(`${file}: ${plain.length} B plain, ${brotli} B brotli (${share} % of the ${budget} B budget), ${gzip} B gzip`);
if (brotli > budget) {
  console.error(`wasm-size: FAILED: ${brotli} B brotli is over the budget of ${budget} B by ${brotli - budget} B`);
  process.exit(1);
}
