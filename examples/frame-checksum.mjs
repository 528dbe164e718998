// The frames demo's checksum, shared by producer.mjs (which writes it into
// each frame's header) and consumer.mjs (which checks every frame against it).

/**
 * Fletcher-style checksum of the pixels, as two uint32 sums: the second one
 * weighs every pixel by its position, so pixels from two different frames
 * (a torn frame) do not add up to either frame's sum.
 */
export function checksum(pixels) {
  let a = 0;
  let b = 0;
  for (let i = 0; i < pixels.length; i++) {
    a = (a + pixels[i]) >>> 0;
    b = (b + a) >>> 0;
  }
  return [a, b];
}
