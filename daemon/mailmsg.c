/* mailmsg.c - under construction */
#include "util.h"
