/*
 * Execution harness for relocator tests: runs a piece of machine code from a given register
 * and flags state on a private stack, and captures the state when the code reaches a landing
 * stub. Layout of the state block must match CpuState in exec_harness.h.
 *
 * Landing stubs (generated at run time next to the code under test) do:
 *     mov   dword ptr [rip+marker], id
 *     xchg  rsp, qword ptr [rip+host_rsp_slot]   ; test rsp -> slot, host rsp -> rsp
 *     jmp   dprobe_test_landing
 * None of these touch a register other than rsp, nor the flags.
 */
        .intel_syntax noprefix
        .text

        .set S_RAX, 0
        .set S_RBX, 8
        .set S_RCX, 16
        .set S_RDX, 24
        .set S_RSI, 32
        .set S_RDI, 40
        .set S_RBP, 48
        .set S_R8, 56
        .set S_R9, 64
        .set S_R10, 72
        .set S_R11, 80
        .set S_R12, 88
        .set S_R13, 96
        .set S_R14, 104
        .set S_R15, 112
        .set S_FLAGS, 120
        .set S_RSP, 128
        .set S_ENTRY, 136

/* void dprobe_test_run(CpuState* state [rdi], uint64_t* host_rsp_slot [rsi]) */
        .globl  dprobe_test_run
        .type   dprobe_test_run, @function
dprobe_test_run:
        push    rbx
        push    rbp
        push    r12
        push    r13
        push    r14
        push    r15
        push    rdi                     /* the landing finds the state block here */
        mov     [rsi], rsp
        mov     rsp, [rdi + S_RSP]      /* the test's own stack from here on */
        push    qword ptr [rdi + S_ENTRY]
        push    qword ptr [rdi + S_FLAGS]
        popfq
        mov     rax, [rdi + S_RAX]
        mov     rbx, [rdi + S_RBX]
        mov     rcx, [rdi + S_RCX]
        mov     rdx, [rdi + S_RDX]
        mov     rsi, [rdi + S_RSI]
        mov     rbp, [rdi + S_RBP]
        mov     r8, [rdi + S_R8]
        mov     r9, [rdi + S_R9]
        mov     r10, [rdi + S_R10]
        mov     r11, [rdi + S_R11]
        mov     r12, [rdi + S_R12]
        mov     r13, [rdi + S_R13]
        mov     r14, [rdi + S_R14]
        mov     r15, [rdi + S_R15]
        mov     rdi, [rdi + S_RDI]
        lea     rsp, [rsp + 8]          /* lea: flags stay as loaded */
        jmp     qword ptr [rsp - 8]     /* entry; below rsp now, as if never pushed */
        .size   dprobe_test_run, . - dprobe_test_run

/* Entered from a landing stub with rsp = the host rsp saved by dprobe_test_run. */
        .globl  dprobe_test_landing
        .type   dprobe_test_landing, @function
dprobe_test_landing:
        pushfq
        push    rax
        mov     rax, [rsp + 16]         /* state block */
        mov     [rax + S_RBX], rbx
        mov     [rax + S_RCX], rcx
        mov     [rax + S_RDX], rdx
        mov     [rax + S_RSI], rsi
        mov     [rax + S_RDI], rdi
        mov     [rax + S_RBP], rbp
        mov     [rax + S_R8], r8
        mov     [rax + S_R9], r9
        mov     [rax + S_R10], r10
        mov     [rax + S_R11], r11
        mov     [rax + S_R12], r12
        mov     [rax + S_R13], r13
        mov     [rax + S_R14], r14
        mov     [rax + S_R15], r15
        pop     qword ptr [rax + S_RAX]
        pop     qword ptr [rax + S_FLAGS]
        add     rsp, 8
        cld
        pop     r15
        pop     r14
        pop     r13
        pop     r12
        pop     rbp
        pop     rbx
        ret
        .size   dprobe_test_landing, . - dprobe_test_landing

        .section .note.GNU-stack, "", @progbits
