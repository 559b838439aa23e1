/* config.c - under construction */
#include "util.h"
