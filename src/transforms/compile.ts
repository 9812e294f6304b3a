/** Expressions in step options: compiled at validation, errors located in the option's text. */
import { type CompiledExpression, compileExpression, ExpressionError } from './expr.js';
import { StepOptionError } from './step.js';

/** Compiles an option's expression; a syntax error is a {@link StepOptionError} with its line and column. */
export function compileOption(option: string, source: string): CompiledExpression {
  try {
    return compileExpression(source);
  } catch (error) {
    if (!(error instanceof ExpressionError)) throw error;
    const where = source.includes('\n') ? `line ${error.line}:${error.col}` : `column ${error.col}`;
    throw new StepOptionError(option, `${error.message} (at ${where} of the expression)`, {
      line: error.line,
      col: error.col,
      text: source,
    });
  }
}
