# shellcheck shell=bash  # sourced, never run alone
# How training is launched. One process by default; uncomment one of the lines below.
#
# Several processes on this machine (DDP; gloo on CPU, nccl on GPU; each rank streams its own
# shard of utterances, only rank 0 writes):
#   train_cmd="torchrun --nproc_per_node 4 $(command -v flowaccent)"
#
# On Slurm, run.sh inside a job of 2 nodes (sbatch), and srun starting one torchrun per node (4 GPUs each),
# all meeting at the job's first node. The command is split into words as it is, never run through a shell
# again, so the meeting point is worked out here (a `\$(hostname)` reached torchrun as that text):
#   head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
#   train_cmd="srun --nodes 2 --ntasks-per-node 1 --gpus-per-node 4 torchrun --nnodes 2 \
#     --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint $head:29500 $(command -v flowaccent)"
#
train_cmd=${train_cmd:-flowaccent}  # how stage 3 starts flowaccent (cmd.sh: torchrun, Slurm)

# How scoring is launched (stages 4 and 5). One process by default; under torchrun each process scores a share of
# every set and the first joins them (exp/ on a file system all of them see), e.g. one per GPU:
#   score_cmd="torchrun --nproc_per_node 4 $(command -v flowaccent)"
# Reports run in one process.
score_cmd=${score_cmd:-flowaccent}  # how stages 4 and 5 start flowaccent
