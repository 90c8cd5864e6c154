/* The console on USART2 (docs/firmware-console.md): echo and line editing, log lines that do not
 * garble a half-typed command, and the prompt. */
#ifndef DDAGENT_CONSOLE_H
#define DDAGENT_CONSOLE_H
#include <stddef.h>

/* A reply line (CR LF appended); used by command handlers. */
void con_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A log line "[<ms, 8 digits>] <tag>: <message>". */
void log_msg(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the prompt and starts accepting input (once, after the boot marker). */
void con_start(void);

/* Reads pending console bytes, runs complete command lines. */
void con_poll(void);

/* Runs one command line (cli.c). */
void cli_exec(char *line);

#endif
