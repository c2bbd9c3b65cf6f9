/* The blob's first 128 bytes (abi/agent_blob.h: AgentBlobHeader) and the rt_sigreturn stub.
   Offsets are differences of symbols in the one output section: the linker resolves them,
   so the blob needs no relocation. */

	.section .blob_header, "a", @progbits
	.balign 64
	.globl agent_blob_header
	.hidden agent_blob_header
	.type agent_blob_header, @object
agent_blob_header:
	.quad 0x424F4C4242525044            /* magic "DPRBBLOB" */
	.long 1                              /* version */
	.long 128                            /* header_size */
	.quad __agent_blob_end - agent_blob_header
	.quad agent_dispatch - agent_blob_header
	.quad agent_sigtrap - agent_blob_header
	.quad agent_sigreturn - agent_blob_header
	.quad 0                              /* region_address, written by the loader */
	.fill 9, 8, 0                        /* reserved */
	.size agent_blob_header, 128

	.text
	.globl agent_sigreturn
	.hidden agent_sigreturn
	.type agent_sigreturn, @function
agent_sigreturn:
	mov $15, %eax                        /* rt_sigreturn */
	syscall
	ud2
	.size agent_sigreturn, . - agent_sigreturn

	.section .note.GNU-stack, "", @progbits
