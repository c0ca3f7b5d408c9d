// A bounded pool for work on several hosts at once (`--jobs`).

/** Runs `task` for each index below `count`, at most `jobs` at once; results in index order. */
export async function pool<T>(
  count: number,
  jobs: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, count)) }, worker));
  return results;
}
