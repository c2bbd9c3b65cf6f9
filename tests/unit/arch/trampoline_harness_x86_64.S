/*
 * Execution harness for trampoline tests.
 *
 * dprobe_test_call calls a function with every general register and rflags (DF included) set
 * from a CpuState (exec_harness.h), on a test stack, and records them all after it returns.
 * dprobe_test_dispatch stands in for agent_dispatch: it records what the trampoline's call looks
 * like, lets C++ copy the frame, then clobbers every register and flag a SysV function may.
 * The tf_* functions are probed: the tests copy their bytes (tf_x .. tf_x_end) into RWX memory.
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

/*
 * void dprobe_test_call(CpuState* state [rdi])
 * state->rsp (T) is the rsp of the `call`: the callee starts with rsp = T - 8. The harness uses
 * the 3 words at T, T+8, T+16 (host rsp, flags, entry), nothing below T - 8.
 */
        .globl  dprobe_test_call
        .type   dprobe_test_call, @function
dprobe_test_call:
        push    rbx
        push    rbp
        push    r12
        push    r13
        push    r14
        push    r15
        push    rdi                     /* the state block, found again after the call */
        mov     rax, [rdi + S_RSP]
        mov     [rax], rsp
        mov     rcx, [rdi + S_FLAGS]
        mov     [rax + 8], rcx
        mov     rcx, [rdi + S_ENTRY]
        mov     [rax + 16], rcx
        lea     rsp, [rax + 8]
        popfq
        lea     rsp, [rsp - 16]         /* T; lea keeps the flags just loaded */
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
        call    qword ptr [rsp + 16]
        xchg    rsp, [rsp]              /* host rsp back; [T] = rsp after the return */
        pushfq
        push    rax
        mov     rax, [rsp + 16]
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
        mov     rcx, [rax + S_RSP]
        mov     rcx, [rcx]
        mov     [rax + S_RSP], rcx      /* rsp after the return */
        add     rsp, 8
        cld
        pop     r15
        pop     r14
        pop     r13
        pop     r12
        pop     rbp
        pop     rbx
        ret
        .size   dprobe_test_call, . - dprobe_test_call

        .set H_ENTRY_RSP, 0
        .set H_ENTRY_FLAGS, 8

/*
 * void dprobe_test_dispatch(HitRecord* region [rdi], uint32_t probe_id [esi], SavedRegisters* [rdx])
 */
        .globl  dprobe_test_dispatch
        .type   dprobe_test_dispatch, @function
dprobe_test_dispatch:
        mov     [rdi + H_ENTRY_RSP], rsp
        pushfq
        pop     qword ptr [rdi + H_ENTRY_FLAGS]
        sub     rsp, 8
        call    dprobe_test_record_hit@PLT
        add     rsp, 8
        /* What a compiled dispatcher may leave behind: every caller-saved register and flag. */
        mov     rax, 0xdead000000000000
        mov     rcx, rax
        mov     rdx, rax
        mov     rsi, rax
        mov     rdi, rax
        mov     r8, rax
        mov     r9, rax
        mov     r10, rax
        mov     r11, rax
        push    0x8d7                   /* CF PF AF ZF SF OF set, DF clear as the ABI requires */
        popfq
        ret
        .size   dprobe_test_dispatch, . - dprobe_test_dispatch

/*
 * Probed at entry. push rbp; mov rbp, rsp; sub rsp, 0x10 is what the planner must pick.
 * rax = rdi + 2 * rsi + rdx; flags from the add.
 */
        .globl  tf_entry, tf_entry_end
tf_entry:
        push    rbp
        mov     rbp, rsp
        sub     rsp, 0x10
        mov     [rbp - 8], rdi
        lea     rax, [rdi + rsi * 2]
        add     rax, rdx
        mov     rdi, [rbp - 8]
        leave
        ret
tf_entry_end:

/*
 * Probed in the middle (tf_mid_site): the red zone and the flags of the cmp are live across the
 * probe, and nothing after the cmp changes the flags, so they come back to the caller.
 * rax = (rdi < rsi ? rdx : rdi + rsi) + rdi; r9 = rsi; rcx = rdx.
 */
        .globl  tf_mid, tf_mid_site, tf_mid_end
tf_mid:
        mov     [rsp - 8], rdi
        mov     [rsp - 128], rsi
        cmp     rdi, rsi
tf_mid_site:
        lea     rax, [rdi + rsi]        /* 4 bytes */
        mov     rcx, rdx                /* 3 bytes: replaced with the lea */
        cmovb   rax, rcx
        mov     r8, [rsp - 8]
        mov     r9, [rsp - 128]
        lea     rax, [rax + r8]
        ret
tf_mid_end:

/*
 * Probed at entry; the replaced run ends with a call, whose return address must be the
 * original one. eax = 3 * edi + edi.
 */
        .globl  tf_call, tf_call_end, tf_call_function_end
tf_call:
        push    rbx
        mov     ebx, edi
        call    tf_call_helper
        add     eax, ebx
        pop     rbx
        ret
tf_call_function_end:
tf_call_helper:
        lea     eax, [rdi + rdi * 2]
        mov     rdx, [rsp]              /* its return address, for the test to check */
        ret
tf_call_end:

/*
 * Probed at entry; the replaced run reads memory RIP-relative. eax = value + edi.
 */
        .globl  tf_rip, tf_rip_end, tf_rip_function_end
tf_rip:
        mov     eax, dword ptr [rip + tf_rip_value]
        add     eax, edi
        ret
tf_rip_function_end:
tf_rip_value:
        .long   0x12345
tf_rip_end:

        .section .note.GNU-stack, "", @progbits
