// Prints one plain closing line, `tests: N passed, N failed, N skipped`, after everything jest
// prints, so any log reader can tell how many tests ran without parsing jest's own summary.
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = results;
    const line = `tests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped\n`;
    // Jest's summary reporter runs after this one; the line must close the output.
    process.once('exit', () => process.stderr.write(line));
  }
}
