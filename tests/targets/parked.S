/* Code in which a thread sits inside the bytes a jump probe replaces.
 *
 * park_syscall(): pause(2) by a raw syscall; returns the syscall's result (-EINTR once a signal
 * handler ran). A thread blocked here has rip = park_syscall+6, right after the syscall, and a
 * stop by a tracer interrupts the syscall with a restart pending: when the thread resumes, the
 * kernel moves rip back by 2, to the syscall at +4. A jump at +0 replaces all 6 bytes (xor and
 * mov are 4 bytes, too few), so the restart lands inside the replaced bytes.
 *
 *   +0  31 c0        xor eax, eax
 *   +2  b0 22        mov al, 34        (__NR_pause)
 *   +4  0f 05        syscall
 *   +6  c3           ret
 *
 * spin(start, limit_ptr): increments rdi until it reaches *limit_ptr (read every round, so
 * another thread can end the loop), returns the final value. The loop branches back to spin+0,
 * so every round enters the probe site with arg0 = round index; a thread stopped while it spins
 * is at +0, +4 (inside a 7-byte jump's range) or +7.
 *
 *   +0  48 83 c7 01  add rdi, 1
 *   +4  48 3b 3e     cmp rdi, qword ptr [rsi]
 *   +7  72 f7        jb  +0
 *   +9  48 89 f8     mov rax, rdi
 *   +12 c3           ret
 */
        .intel_syntax noprefix
        .text
        .p2align 4
        .globl park_syscall
        .type park_syscall, @function
park_syscall:
        xor eax, eax
        mov al, 34
        syscall
        ret
        .size park_syscall, . - park_syscall

        .p2align 4
        .globl spin
        .type spin, @function
spin:
        add rdi, 1
        cmp rdi, qword ptr [rsi]
        jb spin
        mov rax, rdi
        ret
        .size spin, . - spin

        .section .note.GNU-stack, "", @progbits
