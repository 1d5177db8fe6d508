// The KeyStore port is an interface only. This file gives the signet_hsm library a translation
// unit and checks that key_store.h compiles on its own.
#include "hsm/key_store.h"
