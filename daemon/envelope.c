/* envelope.c - under construction */
#include "util.h"
