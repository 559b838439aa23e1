/* spool.c - under construction */
#include "util.h"
