// Verifies JWTs with jose (Node) given nothing but a JWKS URL: `node jose_verify.mjs URL ALG GOOD
// [BAD...]`. Exits 0 when GOOD verifies and every BAD is refused; prints why otherwise.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [url, alg, good, ...bad] = process.argv.slice(2);
const keys = createRemoteJWKSet(new URL(url));
try {
  const { payload } = await jwtVerify(good, keys, { algorithms: [alg] });
  if (payload.token_type !== "access") throw new Error(`claims: ${JSON.stringify(payload)}`);
} catch (err) {
  console.error(`jose refused the good token: ${err}`);
  process.exit(1);
}
for (const [i, token] of bad.entries()) {
  try {
    await jwtVerify(token, keys, { algorithms: [alg] });
    console.error(`jose accepted bad token ${i}`);
    process.exit(1);
  } catch {
    // refused, as it should be
  }
}
