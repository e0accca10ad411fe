/* tok.h: the CLIP byte-level BPE tokenizer (prefix tok_). Arrives with the tokenizer issue; for
 * now this header only marks the module's place in the build (engine <- cuda <- tokenizer). */
#ifndef TOK_H
#define TOK_H

#include "eng.h"

#endif /* TOK_H */
