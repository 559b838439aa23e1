/* scheduler.c - under construction */
#include "util.h"
