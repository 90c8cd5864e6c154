/* Memory figures for the custom metrics, measured by stack painting (see startup.c). */
#ifndef DDAGENT_SYSINFO_H
#define DDAGENT_SYSINFO_H
#include <stdint.h>

/* Peak stack use in bytes since boot (top of RAM down to the deepest word written). */
uint32_t sys_stack_high_water(void);

/* Bytes never touched between the end of static data (the agent has no heap) and the deepest
 * stack word: what a heap could still use. */
uint32_t sys_free_heap(void);

#endif
