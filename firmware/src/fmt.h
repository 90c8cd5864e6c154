/* A small snprintf subset (%s %c %d %u %lu %llu %x %lx, width and 0 flag, %%) so the image needs
 * no newlib stdio. gcc checks the format strings through the attribute. */
#ifndef DDAGENT_FMT_H
#define DDAGENT_FMT_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

size_t fmt_vsn(char *buf, size_t size, const char *fmt, va_list ap);
size_t fmt_sn(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Decimal digits of v into buf (no NUL); returns the count (1..20). */
size_t fmt_u64(char *buf, uint64_t v);

/* Parses a whole decimal string into *out; 0 on success, -1 on junk, empty or overflow. */
int parse_u64(const char *s, uint64_t *out);

#endif
