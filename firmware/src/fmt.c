#include "fmt.h"

size_t fmt_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (unsigned)(v % 10u));
        v /= 10u;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1u - i];
    return n;
}

int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10u) return -1;
        v = v * 10u + d;
    }
    *out = v;
    return 0;
}

struct out { char *buf; size_t size, len; };

static void put(struct out *o, char c)
{
    if (o->len + 1u < o->size) o->buf[o->len] = c;
    o->len++;
}

size_t fmt_vsn(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') { put(&o, *fmt); continue; }
        fmt++;
        char pad = ' ';
        unsigned width = 0, lng = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10u + (unsigned)(*fmt++ - '0');
        while (*fmt == 'l') { lng++; fmt++; }
        char num[24];
        size_t n = 0;
        const char *s = num;
        switch (*fmt) {
        case 's': s = va_arg(ap, const char *); if (!s) s = "(null)"; while (s[n]) n++; break;
        case 'c': num[0] = (char)va_arg(ap, int); n = 1; break;
        case 'd': {
            long long v = lng >= 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0) { num[0] = '-'; n = 1 + fmt_u64(num + 1, (uint64_t)(-(v + 1)) + 1u); }
            else n = fmt_u64(num, (uint64_t)v);
            break;
        }
        case 'u': {
            uint64_t v = lng >= 2 ? va_arg(ap, unsigned long long) : lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            n = fmt_u64(num, v);
            break;
        }
        case 'x': {
            uint64_t v = lng >= 2 ? va_arg(ap, unsigned long long) : lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            char tmp[16];
            size_t k = 0;
            do { tmp[k++] = "0123456789abcdef"[v & 15u]; v >>= 4; } while (v);
            while (k) num[n++] = tmp[--k];
            break;
        }
        case '%': num[0] = '%'; n = 1; break;
        case '\0': fmt--; break;
        default: num[0] = '%'; num[1] = *fmt; n = 2; break;
        }
        for (size_t i = n; i < width; i++) put(&o, pad);
        for (size_t i = 0; i < n; i++) put(&o, s[i]);
    }
    if (size) o.buf[o.len < size ? o.len : size - 1u] = '\0';
    return o.len;
}

size_t fmt_sn(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vsn(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
