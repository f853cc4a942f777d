"""What each number of ``evaluation_metrics.json`` means: written into the file beside them."""

from __future__ import annotations

from text2sign.metrics.pose_dtw import VARIANT

# metric → (which videos, which part): the share of frames in which the estimator found it;
# "gap": reference minus generated, over the clips with keypoints on both sides
DETECTION = {
    "pose_found_body": ("generated", "body"),
    "pose_found_left_hand": ("generated", "left_hand"),
    "pose_found_right_hand": ("generated", "right_hand"),
    "reference_pose_found_body": ("reference", "body"),
    "reference_pose_found_left_hand": ("reference", "left_hand"),
    "reference_pose_found_right_hand": ("reference", "right_hand"),
    "detection_gap_body": ("gap", "body"),
    "detection_gap_left_hand": ("gap", "left_hand"),
    "detection_gap_right_hand": ("gap", "right_hand"),
}
FLOOR = ("dtw_mje_floor", "dtw_mje_floor_clips")

DEFINITIONS = {
    "eval_clips": "validation clips evaluated: a seeded draw (eval.seed, the same for every run), "
    "stratified over recordings (one clip per recording per round); the result's 'clips' lists them",
    "eval_recordings": "recordings the evaluated clips come from (the audit's test is over these)",
    "eval_signers": "signers the evaluated clips come from",
    "psnr": "mean over videos of PSNR (dB, uint8 range) between the generated and reference video",
    "ssim": "mean over videos of SSIM (Gaussian 11x11, sigma 1.5; mean over frames and channels)",
    "temporal_cos": "mean cosine similarity of consecutive generated frames (pixels scaled to [-1, 1])",
    "temporal_l1": "mean absolute difference of consecutive generated frames (0-255 units)",
    "reference_temporal_cos": "temporal_cos of the reference videos, for context",
    "fvd": "Frechet distance of I3D features (StyleGAN-V torchscript), reference vs generated",
    "lpips": "mean LPIPS (AlexNet) over paired frames resized to 64 px",
    "dtw_mje": "mean over clips of the DTW mean joint error of the generated keypoints vs the "
    "reference's. Synthetic set: blob centres vs the exact keypoints (fraction of the frame, "
    "missing blobs at the frame centre, total / path length). Real signers: MediaPipe keypoints "
    f"of both, {VARIANT}; keypoints_source says which",
    "dtw_mje_clips": "clips DTW-MJE could score (real data: the others lack a body, shoulders or "
    "keypoints in the reference; see audit.unscorable)",
    "dtw_mje_floor": "estimator floor: real signers, nDTW-MJE of the references' keypoints at the "
    "model's resolution vs at native resolution (the source's centre square, same frames), in "
    "native shoulder widths; synthetic set, the blobs detected in the references vs the exact "
    "keypoints. The lowest a perfect model could score",
    "dtw_mje_floor_clips": "clips the floor could score (audit.floor.unscorable says why not)",
    "pose_found_body": "share of generated frames (correct captions) where MediaPipe found the body",
    "pose_found_left_hand": "share of generated frames where MediaPipe found the left hand",
    "pose_found_right_hand": "share of generated frames where MediaPipe found the right hand",
    "reference_pose_found_body": "share of reference frames where MediaPipe found the body",
    "reference_pose_found_left_hand": "share of reference frames where it found the left hand",
    "reference_pose_found_right_hand": "share of reference frames where it found the right hand",
    "detection_gap_body": "detection gap: reference minus generated share of frames with the body, "
    "mean over the clips with keypoints on both sides (> 0: the samples lose it)",
    "detection_gap_left_hand": "detection gap of the left hand (reference minus generated)",
    "detection_gap_right_hand": "detection gap of the right hand (reference minus generated)",
    "dtw_mje_shuffled": "dtw_mje when each clip is sampled with another clip's caption (same noise)",
    "dtw_mje_empty": "dtw_mje when every clip is sampled with the empty caption (same noise)",
    "audit_gap": "mean over recordings of the recording's mean (dtw_mje_shuffled - dtw_mje) over "
    "its clips scored in both passes (> 0: the caption drives the motion)",
    "audit_p": "exact one-sided sign-flip permutation p-value over recordings of shuffled > "
    "correct (clips of a recording averaged first: a cluster-level test); N/A with 1 recording",
    "audit_recordings": "recordings the audit's test rests on (clusters with a clip scored in "
    "both passes)",
    "inference_s_per_video": "median seconds to sample one video on the job's device (after one "
    "warm-up; pooled over the ranks, each timing its own device)",
    "inference_peak_memory_bytes": "peak CUDA allocation, or process RSS on CPU, while sampling: "
    "the largest over the ranks (inference_device names it)",
}
