// `lora-verify corpus DIR`: the built-in matrix variants as files plus manifest.json.
#pragma once

#include "cli/args.h"
#include <string>
#include <vector>

// Runs `lora-verify corpus ARGS...` (the arguments after the word "corpus") and returns the
// exit code: 0 written, 1 --filter matched nothing, 64 usage, 73 DIR not writable.
int run_corpus_command(const lv::cli::Args& args);
