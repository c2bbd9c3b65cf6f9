/* reloc_kinds(long x): one instruction of every kind the relocator must fix up when it copies
 * code out of line, each at a local label that stays in .symtab so tests can compute its offset
 * from reloc_kinds (nm) and probe uprobe:reloc:reloc_kinds+OFF. Every result feeds the returned
 * checksum, so a mis-relocated instruction changes the program's output (or crashes on ud2).
 *
 * Label              instruction                         executes per call
 * reloc_push         push rbp (rsp-relative store)       1
 * reloc_rip_load     mov rax, [rip+reloc_data]           1
 * reloc_rip_store    add qword ptr [rip+reloc_counter],1 1  (read-modify-write)
 * reloc_rip_cmp_imm  cmp qword ptr [rip+reloc_data],imm  1  (imm32 after the disp32)
 * reloc_rip_lea      lea rcx, [rip+reloc_table]          1
 * reloc_call         call reloc_helper (rel32)           1
 * reloc_call_ind     call qword ptr [rip+reloc_fnptr]    1
 * reloc_jcc8         jnz rel8 (taken when x is odd)      1
 * reloc_jcc8_taken   first instruction of the taken arm  x odd ? 1 : 0
 * reloc_jcc32        jz rel32 (taken when x & 2 == 0)    1
 * reloc_jcc32_taken  first instruction of the taken arm  (x & 2) == 0 ? 1 : 0
 * reloc_jmp8         jmp rel8 over a ud2                 1
 * reloc_jmp32        jmp rel32 over a ud2                1
 * reloc_loop         loop rel8 (backward)                (x & 3) + 1
 * reloc_jrcxz        jrcxz rel8 (taken when x & 4 == 0)  1
 * reloc_ret          ret                                 1
 */
        .intel_syntax noprefix

        .data
        .p2align 3
reloc_data:     .quad 1000003
reloc_counter:  .quad 0
reloc_fnptr:    .quad reloc_helper

        .section .rodata
        .p2align 3
reloc_table:    .quad 11, 22, 33, 44

        .text
        .p2align 4
        .globl reloc_helper
        .type reloc_helper, @function
reloc_helper:
        lea rax, [rdi + rdi*2 + 7]
        ret
        .size reloc_helper, . - reloc_helper

        .p2align 4
        .globl reloc_kinds
        .type reloc_kinds, @function
reloc_kinds:
reloc_push:
        push rbp
        mov rbp, rsp
        push rbx
        push r12
        mov rbx, rdi
        xor r12d, r12d

reloc_rip_load:
        mov rax, qword ptr [rip + reloc_data]
        add r12, rax

reloc_rip_store:
        add qword ptr [rip + reloc_counter], 1
        add r12, qword ptr [rip + reloc_counter]

reloc_rip_cmp_imm:
        cmp qword ptr [rip + reloc_data], 1000003
        sete al
        movzx eax, al
        lea r12, [r12 + rax*4]

reloc_rip_lea:
        lea rcx, [rip + reloc_table]
        mov rdx, rbx
        and edx, 3
        add r12, qword ptr [rcx + rdx*8]

        mov rdi, rbx
reloc_call:
        call reloc_helper
        add r12, rax

        mov rdi, r12
reloc_call_ind:
        call qword ptr [rip + reloc_fnptr]
        xor r12, rax

        test bl, 1
reloc_jcc8:
        jnz reloc_jcc8_taken
        add r12, 9
        jmp .Ljcc8_done
reloc_jcc8_taken:
        add r12, 5
.Ljcc8_done:

        test bl, 2
reloc_jcc32:
        {disp32} jz reloc_jcc32_taken
        imul r12, r12, 3
        jmp .Ljcc32_done
reloc_jcc32_taken:
        imul r12, r12, 5
.Ljcc32_done:

reloc_jmp8:
        jmp .Ljmp8_target
        ud2
.Ljmp8_target:
        add r12, 17

reloc_jmp32:
        {disp32} jmp .Ljmp32_target
        ud2
.Ljmp32_target:
        add r12, 19

        mov ecx, ebx
        and ecx, 3
        inc ecx
.Lloop_top:
        lea r12, [r12 + rcx*2]
reloc_loop:
        loop .Lloop_top

        mov rcx, rbx
        and ecx, 4
reloc_jrcxz:
        jrcxz .Ljrcxz_taken
        add r12, 100
        jmp .Ljrcxz_done
.Ljrcxz_taken:
        add r12, 200
.Ljrcxz_done:

        mov rax, r12
        pop r12
        pop rbx
        pop rbp
reloc_ret:
        ret
        .size reloc_kinds, . - reloc_kinds

        .section .note.GNU-stack, "", @progbits
