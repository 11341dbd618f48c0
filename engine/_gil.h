/* When the C kernels release the GIL. Include after Python.h. */
#ifndef MODELROUTE_GIL_H
#define MODELROUTE_GIL_H

/* Inputs this short take microseconds: releasing the GIL for them would let another thread take
 * it and make this one wait for it back (up to the interpreter's switch interval), so only long
 * inputs release it. */
#define RELEASE_GIL_ABOVE_BYTES 65536
static PyThreadState *release_gil_if_long(Py_ssize_t n) {
    return n > RELEASE_GIL_ABOVE_BYTES ? PyEval_SaveThread() : NULL;
}

#endif
