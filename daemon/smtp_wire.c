/* smtp_wire.c - under construction */
#include "util.h"
