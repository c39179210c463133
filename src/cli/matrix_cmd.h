// `lora-verify matrix`: the compatibility matrix command (options, files, exit code).
#pragma once

#include "cli/args.h"
#include <string>
#include <vector>

// Runs `lora-verify matrix ARGS...` (the arguments after the word "matrix") and returns the
// exit code: 0 fine, 1 a built-in variant not equivalent or a regression against the
// baseline, 64 usage, 65/66 bad or missing input, 73 output not writable.
int run_matrix_command(const lv::cli::Args& args);
