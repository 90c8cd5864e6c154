/* Console commands (docs/firmware-console.md). Values cannot contain spaces: tokens split on
 * spaces, like the STM32 reference CLI. */
#include <string.h>
#include "agent.h"
#include "console.h"
#include "fmt.h"
#include "hw.h"
#include "cortexm.h"
#include "store.h"

static void cmd_help(void)
{
    con_reply("help                     list the commands");
    con_reply("conf get [<key>]         show the staged configuration");
    con_reply("conf set <key> <value>   stage a value (keys: see conf get)");
    con_reply("conf commit              save the staged configuration (applied after reset)");
    con_reply("reset                    reboot (configuration, faults, listen list survive)");
    con_reply("listen tcp|udp <port>    add a listening port to the reports");
    con_reply("listen clear             empty the listen list");
    con_reply("fault list               show every fault and its state");
    con_reply("fault <name> on|off      switch a fault");
    con_reply("status                   MQTT state and report counters");
}

static void print_conf(int key)
{
    char buf[100];
    conf_format(&g_staged, key, buf, sizeof buf);
    con_reply("%s", buf);
}

static void cmd_conf(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "get") == 0 && argc <= 3) {
        if (argc == 2) {
            for (int k = 0; k < CONF_KEYS; k++) print_conf(k);
            return;
        }
        int k = conf_key_index(argv[2]);
        if (k < 0) con_reply("Error: key: %s was not recognized.", argv[2]);
        else print_conf(k);
        return;
    }
    if (argc >= 3 && strcmp(argv[1], "set") == 0) {
        int k = conf_key_index(argv[2]);
        if (k < 0) {
            con_reply("Error: key: %s was not recognized.", argv[2]);
        } else if (argc != 4 || conf_set(&g_staged, k, argv[3]) != 0) {
            con_reply("Error: value: %s is not valid for key: %s", argc >= 4 ? argv[3] : "", argv[2]);
        } else {
            print_conf(k);
        }
        return;
    }
    if (argc == 2 && strcmp(argv[1], "commit") == 0) {
        g_persist.conf = g_staged;
        store_save();
        con_reply("Configuration saved to NVM.");
        return;
    }
    con_reply("conf: usage: conf get [<key>] | conf set <key> <value> | conf commit");
}

static void print_ports(char *buf, size_t size, const uint16_t *p, uint8_t n)
{
    size_t len = fmt_sn(buf, size, "[");
    for (uint8_t i = 0; i < n && len < size; i++) len += fmt_sn(buf + len, size - len, i ? ",%u" : "%u", p[i]);
    if (len < size) fmt_sn(buf + len, size - len, "]");
}

static void print_listen(void)
{
    char t[64], u[64];
    print_ports(t, sizeof t, g_persist.tcp, g_persist.n_tcp);
    print_ports(u, sizeof u, g_persist.udp, g_persist.n_udp);
    con_reply("listen: tcp=%s udp=%s", t, u);
}

static void cmd_listen(int argc, char **argv)
{
    uint64_t port;
    if (argc == 1) {
        print_listen();
    } else if (argc == 2 && strcmp(argv[1], "clear") == 0) {
        g_persist.n_tcp = g_persist.n_udp = 0;
        store_save();
        print_listen();
    } else if (argc == 3 && (strcmp(argv[1], "tcp") == 0 || strcmp(argv[1], "udp") == 0) &&
               parse_u64(argv[2], &port) == 0 && port >= 1 && port <= 65535) {
        int tcp = argv[1][0] == 't';
        uint16_t *list = tcp ? g_persist.tcp : g_persist.udp;
        uint8_t *n = tcp ? &g_persist.n_tcp : &g_persist.n_udp;
        for (uint8_t i = 0; i < *n; i++) {
            if (list[i] == port) { print_listen(); return; }
        }
        if (*n >= LISTEN_MAX) {
            con_reply("Error: listen list full (%u ports per protocol)", (unsigned)LISTEN_MAX);
            return;
        }
        list[(*n)++] = (uint16_t)port;
        store_save();
        print_listen();
    } else {
        con_reply("listen: usage: listen tcp|udp <port> | listen clear");
    }
}

static void cmd_fault(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (int f = 0; f < F_COUNT; f++) con_reply("%s %s", fault_names[f], fault_on((enum fault)f) ? "on" : "off");
        return;
    }
    if (argc != 3 || (strcmp(argv[2], "on") != 0 && strcmp(argv[2], "off") != 0)) {
        con_reply("fault: usage: fault list | fault <name> on|off");
        return;
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (strcmp(argv[1], fault_names[f]) == 0) {
            int on = argv[2][1] == 'n';
            if (on) g_persist.faults |= 1u << f;
            else g_persist.faults &= ~(1u << f);
            store_save();
            log_msg("fault", "%s %s", fault_names[f], on ? "on" : "off");
            con_reply("fault: %s %s", fault_names[f], on ? "on" : "off");
            return;
        }
    }
    con_reply("Error: unknown fault %s", argv[1]);
}

static void cmd_status(void)
{
    agent_status_t s;
    agent_status(&s);
    con_reply("status: mqtt=%s reports=%lu accepted=%lu rejected=%lu", s.mqtt_up ? "up" : "down",
              (unsigned long)s.reports, (unsigned long)s.accepted, (unsigned long)s.rejected);
}

void cli_exec(char *line)
{
    char *argv[6];
    int argc = 0;
    for (char *p = line; *p && argc < 6; ) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        argv[argc++] = p;
        while (*p && *p != ' ') p++;
    }
    if (argc == 6) {
        for (char *p = argv[5]; *p; p++) {
            if (*p == ' ') { *p = '\0'; break; }
        }
    }
    if (argc == 0) return;
    if (strcmp(argv[0], "help") == 0) cmd_help();
    else if (strcmp(argv[0], "conf") == 0) cmd_conf(argc, argv);
    else if (strcmp(argv[0], "listen") == 0) cmd_listen(argc, argv);
    else if (strcmp(argv[0], "fault") == 0) cmd_fault(argc, argv);
    else if (strcmp(argv[0], "status") == 0) cmd_status();
    else if (strcmp(argv[0], "reset") == 0) {
        con_reply("Resetting device.");
        uart_flush(UART_CONSOLE);
        system_reset();
    } else {
        con_reply("Command not recognized. Enter 'help' to view a list of available commands.");
    }
}
