"""Start llama-cpp-python's OpenAI-compatible server with weight repacking off.

Repacking moves weights into CPU-specific layouts (AMX tiles on CPUs that report AMX). Some
virtual machines report AMX in CPUID but fault on its tile instructions, and the server then
dies with SIGSEGV on its first completion. With ``use_extra_bufts = False`` (llama.cpp's
``--no-repack``) the weights stay in their plain layout, which runs on any x86 host.

Usage: python llama_server.py --model FILE.gguf --host 127.0.0.1 --port PORT [server options]
"""

import sys

import llama_cpp.llama_cpp as llama_cpp_lib

_default_params = llama_cpp_lib.llama_model_default_params


def _no_repack_params():
    params = _default_params()
    params.use_extra_bufts = False
    return params


if __name__ == "__main__":
    llama_cpp_lib.llama_model_default_params = _no_repack_params
    from llama_cpp.server.__main__ import main

    sys.argv[0] = "llama_cpp.server"
    main()
