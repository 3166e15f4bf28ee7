"""Packets and timestamps: demuxing, the bitstream fix for packed B-frames, the header-only pass that
lists every packet, whether a decoder may be told to skip pictures, and the frame indexes built from
packets or from decoded frames."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import av
import av.bitstream
import numpy as np

from vast.data.frame_index import FrameIndex

logger = logging.getLogger(__name__)

def _stamp(item: av.Packet | av.VideoFrame) -> int | None:
    """The timestamp that names a frame: its pts, or its dts in a container without pts (AVI).

    A decoded frame carries the pts of the packet its picture was coded in, whatever order the
    decoder outputs it in (so a B-frame in an MP4 whose pts equal its dts keeps its packet's).
    """
    return item.pts if item.pts is not None else item.dts


def _decoding_stamp(packet: av.Packet) -> int | None:
    """The timestamp that seeks to a keyframe packet in other containers: its dts (AVI stores no pts;
    FFmpeg seeks MPEG-PS and -TS by decoding time)."""
    return packet.dts if packet.dts is not None else packet.pts


def _demux(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> Iterator[av.Packet]:
    """The stream's packets, up to the end of the file or to where the demuxer cannot read on."""
    try:
        yield from container.demux(stream)
    except av.FFmpegError as exc:
        # A damaged tail: keep the packets read so far, decoding will clamp to them.
        logger.debug("%s: demuxing stopped early: %s", path, exc)


def _unpacked(packets: Iterator[av.Packet], stream: av.VideoStream) -> Iterator[av.Packet]:
    """``packets`` with one picture each. DivX/Xvid AVIs pack a B-frame into the chunk of the P-frame
    before it and leave a tiny N-VOP placeholder chunk after; FFmpeg's decoder keeps the packed
    picture and decodes it under a later packet's timestamp, so dropping a packet's picture by its
    timestamp would drop the wrong one. FFmpeg's ``mpeg4_unpack_bframes`` filter moves each packed
    picture into the packet whose timestamp names it on output: the decoder outputs the same frames
    in the same order. Streams of other codecs, and MPEG-4 without packing, pass unchanged.
    """
    if stream.codec_context.name != "mpeg4":
        yield from packets
        return
    # A filter per pass: after a seek it must not hold a picture from before.
    unpack = av.bitstream.BitStreamFilterContext("mpeg4_unpack_bframes", in_stream=stream)
    for packet in packets:
        # The empty packet at the end flushes the decoder: drain the filter before it.
        pictures = unpack.filter(packet) if packet.size else [*unpack.filter(None), packet]
        for picture in pictures:
            picture.stream = stream  # the filter's packets belong to no stream; decode() needs one
            yield picture


def _decode_packet(packet: av.Packet, path: Path) -> list[av.VideoFrame] | None:
    """The frames decoding ``packet`` gives; ``None`` when FFmpeg rejects the packet (the decoder
    goes on with the next, as the command line does)."""
    try:
        return packet.decode()
    except av.FFmpegError as exc:
        logger.debug("%s: a packet at %s does not decode: %s", path, packet.dts, exc)
        return None


class _PacketInfo(NamedTuple):
    pts: int | None
    dts: int | None
    key: bool
    damaged: bool  # flagged corrupt, to be discarded (an MP4 edit list cuts it), or rejected by the decoder
    shown: bool = False  # the decoder output a picture for it though told to skip all: it ignores skip_frame


# FFmpeg's AV_CODEC_CAP_OTHER_THREADS (PyAV's Capabilities.auto_threads): the decoder hands packets
# to a library that decodes in threads of its own.
_OTHER_THREADS = 1 << 15


def _skips_per_packet(codec: av.CodecContext) -> bool:
    """Whether the decoder can be told, packet by packet, to drop pictures (``skip_frame``).

    FFmpeg's own decoders read the setting as they decode each packet. A wrapper of a library that
    decodes in threads of its own (:data:`_OTHER_THREADS`: libdav1d for AV1, libvpx) cannot: libdav1d
    takes the setting the first packet comes with as its mode for the whole stream, seeks included
    (measured on an SVT-AV1 file of 100 frames: ``NONREF`` first, then ``DEFAULT``, outputs 65;
    ``ALL`` first outputs the 3 keyframes and nothing else ever after). Such a decoder is never told
    to skip: skipped frames would no longer map one to one onto the packets told to drop them.
    """
    return not codec.codec.capabilities & _OTHER_THREADS


def _demux_index(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> list[_PacketInfo]:
    """Timestamps and flags of every packet that carries data, without reconstructing a picture.

    Each packet also goes through the decoder with every picture skipped (``skip_frame=ALL``: the
    decoder parses headers only, a few percent on top of demuxing). A packet the decoder rejects
    even so is one FFmpeg drops, so the timestamps would count a frame that never comes out (an
    H.264 P slice in an IDR unit): it is marked damaged, and the file is indexed by decoding. A
    picture that comes out even so shows a decoder that ignores the setting (``shown``; Cinepak
    does). A decoder that cannot be told per packet (:func:`_skips_per_packet`) is not told at all:
    its packets are demuxed only (a damaged one shows when a request decodes it).
    """
    codec = stream.codec_context
    check = _skips_per_packet(codec)
    if check:
        codec.skip_frame = "ALL"
    infos: list[_PacketInfo] = []
    try:
        for packet in _demux(container, stream, path):
            frames = _decode_packet(packet, path) if check else []
            rejected = frames is None
            if packet.size:  # flush packets at the end of the stream carry no frame
                damaged = packet.is_corrupt or packet.is_discard or rejected
                infos.append(_PacketInfo(packet.pts, packet.dts, packet.is_keyframe, damaged, bool(frames)))
            elif infos and (rejected or frames):  # a threaded decoder reports when it drains
                last = infos[-1]
                infos[-1] = last._replace(damaged=last.damaged or rejected, shown=last.shown or bool(frames))
    finally:
        if check:
            codec.skip_frame = "DEFAULT"  # the next seek flushes what this pass left in the decoder
    return infos


# Containers that store each frame's presentation timestamp (AVI stores none; MPEG streams not all).
_TIMESTAMPED_FORMATS = {"mov", "mp4", "matroska", "webm"}


def _stores_timestamps(container: av.container.InputContainer) -> bool:
    """Whether the container stores each frame's presentation timestamp (MP4/MOV, Matroska/WebM)."""
    return bool(_TIMESTAMPED_FORMATS & set(container.format.name.split(",")))


def _trusts_timestamps(stream: av.VideoStream, packets: list[_PacketInfo]) -> bool:
    """Whether sorting the packets' pts gives the frames in the decoder's output order, one each
    (in a container that stores them, :func:`_stores_timestamps`).

    True when the packets all carry distinct pts, none is flagged corrupt, discarded or rejected,
    and their pts differ from their dts somewhere when the codec reorders frames (an MP4 without
    composition offsets, pts equal to dts, stores B-frames in decoding order: ``box.mp4``).
    """
    pts = [p.pts for p in packets]
    if None in pts or len(set(pts)) < len(pts) or any(p.damaged for p in packets):
        return False
    reorders = stream.codec_context.has_b_frames > 0
    return not reorders or any(p.pts != p.dts for p in packets)


def _index_from_packets(packets: list[_PacketInfo]) -> FrameIndex:
    """Frames in pts order, one per packet; seek to a keyframe by its pts."""
    order = np.argsort([p.pts for p in packets], kind="stable")
    stamps = np.asarray([p.pts for p in packets], dtype=np.int64)[order]
    keyframes = np.flatnonzero(np.asarray([p.key for p in packets], dtype=bool)[order])
    if keyframes.size == 0 or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes])  # decoding from the start always works
    return FrameIndex(stamps, keyframes, stamps[keyframes], by_decoding=False, named=True)


def _index_from_frames(
    stamps: list[int | None], key_frames: list[bool], key_packets: dict[int | None, int]
) -> FrameIndex:
    """Frames in the order the decoder output them. Decoding may start after a seek at a key frame
    named by a keyframe packet's stamp (not at a keyframe-flagged placeholder packet, which codes
    no picture); when stamps are missing or repeat, only at the start, counting frames from there."""
    named = None not in stamps and len(set(stamps)) == len(stamps)
    if not named:
        start = np.zeros(1, dtype=np.int64)
        return FrameIndex(np.arange(len(stamps), dtype=np.int64), start, start, True, False)
    entries = [i for i, (s, key) in enumerate(zip(stamps, key_frames)) if key and s in key_packets]
    keyframes = np.asarray(sorted({0, *entries}), dtype=np.int64)
    seek_stamps = np.asarray([key_packets.get(stamps[i], stamps[i]) for i in keyframes], dtype=np.int64)
    return FrameIndex(np.asarray(stamps, dtype=np.int64), keyframes, seek_stamps, True, True)
