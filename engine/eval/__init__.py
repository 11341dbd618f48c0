"""Router evaluation: data loading, metrics (APGR, CPT, AIQ, ECE), reports, calibration."""
