// The common first-call path of every lazily bound function (stubs.inc).
// In: r11 = the function's record; the caller's arguments in rdi, rsi, rdx,
// rcx, r8, r9, xmm0-7, al (vector registers used, for a variadic callee)
// and r10 (static chain), its return address on the stack.
#if defined(__x86_64__)
  .text
  .globl kiln_lazy_entry
  .hidden kiln_lazy_entry
  .type kiln_lazy_entry, @function
  .balign 16
kiln_lazy_entry:
  .cfi_startproc
  pushq %rbp
  .cfi_def_cfa_offset 16
  .cfi_offset %rbp, -16
  movq %rsp, %rbp
  .cfi_def_cfa_register %rbp
  pushq %rdi
  pushq %rsi
  pushq %rdx
  pushq %rcx
  pushq %r8
  pushq %r9
  pushq %rax
  pushq %r10
  // The return address, rbp and 8 registers (80 bytes) are on the stack
  // since the caller's call: rsp is 16-byte aligned here, and stays so.
  subq $128, %rsp
  movdqu %xmm0, 0(%rsp)
  movdqu %xmm1, 16(%rsp)
  movdqu %xmm2, 32(%rsp)
  movdqu %xmm3, 48(%rsp)
  movdqu %xmm4, 64(%rsp)
  movdqu %xmm5, 80(%rsp)
  movdqu %xmm6, 96(%rsp)
  movdqu %xmm7, 112(%rsp)
  movq %r11, %rdi
  call kiln_lazy_resolve
  movq %rax, %r11
  movdqu 0(%rsp), %xmm0
  movdqu 16(%rsp), %xmm1
  movdqu 32(%rsp), %xmm2
  movdqu 48(%rsp), %xmm3
  movdqu 64(%rsp), %xmm4
  movdqu 80(%rsp), %xmm5
  movdqu 96(%rsp), %xmm6
  movdqu 112(%rsp), %xmm7
  addq $128, %rsp
  popq %r10
  popq %rax
  popq %r9
  popq %r8
  popq %rcx
  popq %rdx
  popq %rsi
  popq %rdi
  popq %rbp
  .cfi_def_cfa %rsp, 8
  jmp *%r11
  .cfi_endproc
  .size kiln_lazy_entry, . - kiln_lazy_entry
#endif

  .section .note.GNU-stack, "", @progbits
