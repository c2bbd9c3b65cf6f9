/* spin_into(n) loops n times (at least once) and returns the number of rounds. Its loop
 * branches back to spin_into+2, inside the first 5 bytes: a 5-byte jump at the entry would
 * overwrite the loop's target, so a probe at spin_into must not use the jump mechanism. The
 * probe at spin_into+0 is hit once per call (the loop re-enters at +2, past it).
 *
 *   +0  31 c0        xor eax, eax
 *   +2  83 c0 01     add eax, 1        <- loop target
 *   +5  39 f8        cmp eax, edi
 *   +7  7c f9        jl  +2
 *   +9  c3           ret
 */
        .intel_syntax noprefix
        .text
        .p2align 4
        .globl spin_into
        .type spin_into, @function
spin_into:
        xor eax, eax
.Lspin_into_top:
        add eax, 1
        cmp eax, edi
        jl .Lspin_into_top
        ret
        .size spin_into, . - spin_into

        .section .note.GNU-stack, "", @progbits
