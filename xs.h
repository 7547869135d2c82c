/* SPDX-License-Identifier: MIT */
/*
 * xs.h - TRANSITIONAL, for xenchan-dm's files only: their old names for
 * strict.h's functions, until they move to dm/ and include strict.h
 * themselves (issue 16's other half).  Delete this file then.  Nothing of
 * the proxy includes it: its xenstore module is store.h, named store_*.
 */
#ifndef XENCHAN_XS_H
#define XENCHAN_XS_H

#include "strict.h"

#define xs_parse_canonical strict_canonical
#define xs_read_leaf       strict_leaf
#define xs_copy_printable  strict_printable

#endif
