/* Shared by the fuzz targets (tests/fuzz/README.md): one sandboxed Lua state per process,
 * made as the gateway makes a policy's (the counting allocator with the default memory cap),
 * and a crash that names the broken property. */
#ifndef GW_FUZZ_COMMON_H
#define GW_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <luajit-2.1/lua.h>

#include "lua_api.h"
#include "lua_pattern.h"
#include "lua_vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The policy VM of a default config: lua.memory_limit_mb = 128. */
#define FUZZ_MEM_LIMIT (128u * 1024 * 1024)

static inline gw_lua_vm_t *fuzz_vm(void) {
  static gw_lua_vm_t *vm;
  if (!vm) {
    static const char *const no_plugins[] = {NULL};
    gw_lua_paths_t paths = {AIVO_SOURCE_DIR "/lua", NULL, no_plugins, gw_lua_api_open, gw_lua_pattern_install};
    char err[256];
    vm = gw_lua_vm_new(&paths, err, sizeof err);
    if (!vm) {
      fprintf(stderr, "fuzz: %s\n", err);
      abort();
    }
    vm->mem_limit = FUZZ_MEM_LIMIT;
  }
  lua_settop(vm->L, 0);
  return vm;
}

/* A property the code under test promises does not hold: crash, so the fuzzer keeps the input. */
#define FUZZ_ASSERT(cond, what)                                                    \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "fuzz: %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond); \
      abort();                                                                     \
    }                                                                              \
  } while (0)

#endif
