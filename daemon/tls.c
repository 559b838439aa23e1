/* tls.c - under construction */
#include "util.h"
