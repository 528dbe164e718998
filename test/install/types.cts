// The CommonJS flavour of the installed types (dist/index.d.cts), compiled by the install test.
import memport = require('memport');

export const size: number = memport.SharedRegion.create(64).match(
  (region) => region.size,
  (error) => (memport.isMemportError(error) ? -1 : -2),
);
// @ts-expect-error size is a number
export const wrong: string = memport.SharedRegion.create(64).map((r) => r.size).unwrapOr(0);
