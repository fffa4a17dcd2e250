/* start.c - start-up of a freestanding guest: nothing to set up. */
#include "sbx_guest.h"

_Noreturn void sbx_start(void) { sbx_guest_main(); }
