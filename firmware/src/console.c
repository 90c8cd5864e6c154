#include <stdarg.h>
#include <string.h>
#include "console.h"
#include "fmt.h"
#include "hw.h"

#define LINE_MAX 127

static char line[LINE_MAX + 1];
static size_t line_len;
static int line_overflow;
static int prompt_shown;     /* the CLI is waiting for input: logs must redraw the prompt */

static void out(const char *s, size_t n) { uart_write(UART_CONSOLE, s, n); }

void con_reply(const char *fmt, ...)
{
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vsn(buf, sizeof buf - 2u, fmt, ap);
    va_end(ap);
    if (n > sizeof buf - 3u) n = sizeof buf - 3u;
    buf[n++] = '\r';
    buf[n++] = '\n';
    out(buf, n);
}

void log_msg(const char *tag, const char *fmt, ...)
{
    char buf[220];
    size_t n = fmt_sn(buf, sizeof buf, "[%08lu] %s: ", (unsigned long)millis(), tag);
    va_list ap;
    va_start(ap, fmt);
    n += fmt_vsn(buf + n, sizeof buf - n, fmt, ap);
    va_end(ap);
    if (n > sizeof buf - 1u) n = sizeof buf - 1u;
    if (prompt_shown) out("\r\x1b[K", 4);
    out(buf, n);
    out("\r\n", 2);
    if (prompt_shown) {
        out("> ", 2);
        out(line, line_len);
    }
}

void con_start(void)
{
    out("> ", 2);
    prompt_shown = 1;
}

static void end_line(void)
{
    out("\r\n", 2);
    if (line_len == 0 && !line_overflow) {              /* empty line: just a fresh prompt */
        out("> ", 2);
        return;
    }
    line[line_len] = '\0';
    int skip = line_overflow;
    line_len = 0;
    line_overflow = 0;
    prompt_shown = 0;
    if (!skip) cli_exec(line);
    out("> ", 2);
    prompt_shown = 1;
}

void con_poll(void)
{
    static int last;
    int c;
    while ((c = uart_getc(UART_CONSOLE)) >= 0) {
        int prev = last;
        last = c;
        if (c == '\n' && prev == '\r') {
            continue;                                   /* CR LF is one line end */
        } else if (c == '\r' || c == '\n') {
            end_line();
        } else if (c == 0x03) {                         /* Ctrl-C drops the line */
            line_len = 0;
            line_overflow = 0;
            out("\r\n> ", 4);
        } else if (c == 0x08 || c == 0x7F) {
            if (line_len) {
                line_len--;
                out("\b \b", 3);
            }
        } else if (c >= 0x20 && c < 0x7F) {
            char ch = (char)c;
            out(&ch, 1);
            if (line_len < LINE_MAX) line[line_len++] = ch;
            else line_overflow = 1;                     /* longer lines are dropped */
        }
    }
}
