#!/usr/bin/env python3
"""Checks that ELF files (the lora-verify program, the Python module) run on any x86-64
CPU: every instruction beyond baseline x86-64 (SSE2) must sit in code chosen at run time
for a CPU that has it (src/verify/kernels.h): functions whose names carry the level,
`x86_64_v3` (AVX, AVX2, FMA, BMI, SSE3/SSSE3/SSE4, POPCNT, LZCNT, MOVBE) or `x86_64_v4`
(AVX-512, EVEX encoding). A -march=native build fails this check on an AVX-512 machine.

usage: check-portable.py FILE...     exit 0 portable, 1 not (each function named), 2 usage
Reads `objdump -d` (binutils)."""
import re
import subprocess
import sys

LEGACY_PREFIXES = {"26", "2e", "36", "3e", "64", "65", "67", "f0"}
# Non-VEX instructions newer than SSE2 (SSE3, SSSE3, SSE4.1/4.2, POPCNT, LZCNT, MOVBE, CRC32).
NEWER_THAN_SSE2 = re.compile(
    r"^(addsubp[sd]|haddp[sd]|hsubp[sd]|lddqu|movddup|movs[hl]dup|pshufb|palignr|ph(add|sub)(s?w|d)|pabs[bwd]|pmaddubsw|"
    r"pmulhrsw|psign[bwd]|pblendw|pblendvb|blendv?p[sd]|dpp[sd]|extractps|insertps|movntdqa|mpsadbw|packusdw|pcmpeqq|"
    r"pcmpgtq|pextr[bdq]|pinsr[bdq]|pm(ax|in)(s[bd]|u[wd])|pmov[sz]x\w+|pmuldq|pmulld|ptest|round[ps][sd]|pcmp[ei]str[im]|"
    r"crc32\w*|popcnt|lzcnt|tzcnt|movbe)\b")
LEVELS = {"x86-64": 1, "x86-64-v3": 3, "x86-64-v4": 4}


def required_level(raw_bytes, mnemonic):
    """The x86-64 level an instruction needs: 1 (baseline), 3 or 4."""
    opcode = next((b for b in raw_bytes if b not in LEGACY_PREFIXES), "")
    if opcode == "62":
        return 4  # EVEX: AVX-512
    if opcode in ("c4", "c5"):
        return 3  # VEX: AVX, AVX2, FMA, BMI1/2
    return 3 if NEWER_THAN_SSE2.match(mnemonic) else 1


def allowed_level(function):
    if "x86_64_v4" in function:
        return 4
    if "x86_64_v3" in function:
        return 3
    return 1


def violations(path):
    out = subprocess.run(["objdump", "-d", "--no-addresses", "-w", path], capture_output=True, text=True, check=True).stdout
    function, found = None, {}
    for line in out.splitlines():
        head = re.match(r"^<(.+)>:$", line)
        if head:
            function = head.group(1)
            continue
        parts = line.split("\t")  # "", raw bytes, instruction
        if function is None or len(parts) < 3 or not parts[2].split():
            continue
        raw = parts[1].split()
        mnemonic = parts[2].split()[0]
        need = required_level(raw, mnemonic)
        if need > allowed_level(function):
            entry = found.setdefault(function, [need, 0, mnemonic])
            entry[0] = max(entry[0], need)
            entry[1] += 1
    return found


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bad = False
    for path in argv[1:]:
        found = violations(path)
        count = sum(n for _, n, _ in found.values())
        if not found:
            print(f"{path}: portable (instructions beyond x86-64 only in functions chosen at run time)")
            continue
        bad = True
        print(f"{path}: NOT portable: {count} instructions beyond x86-64 in {len(found)} functions not chosen at run time, e.g.:")
        for function, (need, n, example) in sorted(found.items(), key=lambda kv: -kv[1][1])[:10]:
            print(f"  {function}: {n} needing x86-64-v{need} (e.g. {example})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
