/* tiny_fn is 4 bytes (lea eax,[rdi+1]; ret), shorter than a 5-byte jmp rel32, and tiny_next
 * starts right after it with no padding: a patch that spills past tiny_fn corrupts tiny_next. */
        .intel_syntax noprefix
        .text
        .p2align 4
        .globl tiny_fn
        .type tiny_fn, @function
tiny_fn:
        lea eax, [rdi + 1]
        ret
        .size tiny_fn, . - tiny_fn

        .globl tiny_next
        .type tiny_next, @function
tiny_next:
        lea eax, [rdi + 2]
        ret
        .size tiny_next, . - tiny_next

        .section .note.GNU-stack, "", @progbits
