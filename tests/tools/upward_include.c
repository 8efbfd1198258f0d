/* Compiled by the ctest layers.* checks with exactly the include path of the base layer's
 * library (CMakeLists.txt): plain, it must compile (the control: the command is right); with
 * -DUPWARD it includes a header of the app layer and must fail, since a layer sees only its
 * own headers and those below it. */
#include "clock.h"
#ifdef UPWARD
#include "gateway.h"
#endif

double layers_probe(void) { return gw_clock_now_ms(); }
