/* The native command executor's loop (executor.c), which the program's main (main.c) runs. */
#ifndef MESOSTW_EXECUTOR_H
#define MESOSTW_EXECUTOR_H

/* command.run_executor + CommandExecutor.run for the executor's environment ``env`` (NULL-terminated
 * NAME=value strings): the process's exit code. ``preamble`` opens the agent's executor stream. */
int run_executor(char *const *env, const char *preamble);

#endif
