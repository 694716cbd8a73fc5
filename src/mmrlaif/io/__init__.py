"""Artifact I/O: Parquet tables and JSON files, local or on S3, written atomically.

:mod:`mmrlaif.io.tables` holds tables, images and JSON (local paths or ``s3://`` URIs);
:mod:`mmrlaif.io.s3` moves files and model folders to and from S3 through boto3.
"""

from mmrlaif.io import s3
from mmrlaif.io.s3 import is_s3
from mmrlaif.io.tables import (
    IMAGE_TYPE,
    ImageError,
    atomic_path,
    cell_to_image,
    copy_tree,
    image_to_cell,
    read_rows,
    read_table,
    write_json,
    write_table,
)

__all__ = [
    "IMAGE_TYPE",
    "ImageError",
    "atomic_path",
    "cell_to_image",
    "copy_tree",
    "image_to_cell",
    "is_s3",
    "read_rows",
    "read_table",
    "s3",
    "write_json",
    "write_table",
]
