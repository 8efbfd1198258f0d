#include "settings.h"

static const gw_settings_t *g_current;

const gw_settings_t *gw_settings(void) { return g_current; }
void gw_settings_set(const gw_settings_t *s) { g_current = s; }
