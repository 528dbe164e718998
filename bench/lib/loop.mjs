// The measuring loop every Node-side benchmark uses: warm up, then time
// iterations until both a minimum count and a time budget are reached (or a
// maximum count), so fast metrics get many samples and slow ones a bounded time.

/**
 * @param {() => Promise<unknown> | unknown} iteration one timed operation
 * @param {{ warmup: number, min: number, max: number, budgetMs: number }} plan
 * @returns {Promise<number[]>} nanoseconds per iteration
 */
export function timeIterations(iteration, plan) {
  return sampleIterations(async () => {
    const t0 = process.hrtime.bigint();
    await iteration();
    return Number(process.hrtime.bigint() - t0);
  }, plan);
}

/**
 * Like {@link timeIterations}, for iterations that time only part of their
 * work themselves (set-up or tear-down excluded): `sample` returns nanoseconds.
 */
export async function sampleIterations(sample, { warmup, min, max, budgetMs }) {
  for (let i = 0; i < warmup; i++) await sample();
  const samples = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < max && (samples.length < min || performance.now() < deadline)) {
    samples.push(await sample());
  }
  return samples;
}

/**
 * Turns a stream of events into "wait for the next one": `next()` resolves
 * with the next `event` value (or rejects on 'error' / an early 'exit').
 */
export function eventQueue(emitter, event) {
  const values = [];
  const waiting = [];
  let failure;
  const fail = (error) => {
    failure ??= error instanceof Error ? error : new Error(String(error));
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  emitter.on(event, (value) => {
    const w = waiting.shift();
    if (w) w.resolve(value);
    else values.push(value);
  });
  emitter.on('error', fail);
  emitter.on('exit', (code, signal) => fail(new Error(`the peer process exited (${signal ?? `code ${code}`})`)));
  emitter.on('close', () => fail(new Error('the peer closed the connection')));
  return {
    next() {
      if (values.length) return Promise.resolve(values.shift());
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
}
