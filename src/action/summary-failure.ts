// The job summary of a step that failed before it wrote its own: what failed, never an empty
// section under a failed step.
import { NixPlanError, stringifyError } from '../core/errors.js';
import { codeSpan } from './markdown.js';
import { capSummary } from './summary-cap.js';

/** Most of an error message a failure summary shows (a Nix error can quote a long log). */
const FAILURE_MESSAGE_LIMIT = 4000;

/**
 * The summary of a step that failed before it wrote one (a bad input, a refused plan, a failed
 * evaluation or build): the step's title, that it failed, and the error, in a code span (it can
 * quote a plan, a host or Nix). Written so that whoever reads the run's summaries sees the refusal
 * there too, not an empty section.
 */
export function failureSummary(title: string, error: unknown): string {
  const message = stringifyError(error).replace(/\r?\n/g, ' ');
  const shown =
    message.length > FAILURE_MESSAGE_LIMIT
      ? `${[...message.slice(0, FAILURE_MESSAGE_LIMIT + 1)].slice(0, -1).join('')}…`
      : message;
  const kind = error instanceof NixPlanError ? ` (${error.code})` : '';
  return capSummary(
    `## ${title}: failed\n\n**This step failed**${kind}: ${codeSpan(shown)}\n\n` +
      "The job log has what it did before (and Nix's output, if it ran).\n",
  );
}
