"""A batched LSTM in the style of a widely copied NumPy gist (written for these tests).

One weight matrix WLSTM of shape (1 + D + H, 4H): its first row is the bias, the next D
rows multiply the input and the last H the previous hidden state, so each step reads
the row [1, x_t, h_{t-1}]; its columns are the input, forget and output gates, then the
candidate.  Sequences are (T, B, D); c0 and h0 are optional (zero), and backward takes
the gradient of every h_t plus optional gradients of the final c and h.  Both functions
are static methods of a class.  No adapter: `compare lstm --against gist_lstm.py
--layout gist`.
"""
import numpy as np


class LSTM:

    @staticmethod
    def forward(X, WLSTM, c0=None, h0=None):
        n, b, input_size = X.shape
        d = WLSTM.shape[1] // 4
        c0 = np.zeros((b, d)) if c0 is None else c0
        h0 = np.zeros((b, d)) if h0 is None else h0
        xphpb = WLSTM.shape[0]
        Hin = np.zeros((n, b, xphpb))
        Hout = np.zeros((n, b, d))
        IFOG = np.zeros((n, b, d * 4))
        IFOGf = np.zeros((n, b, d * 4))
        C = np.zeros((n, b, d))
        Ct = np.zeros((n, b, d))
        for t in range(n):
            prevh = Hout[t - 1] if t > 0 else h0
            Hin[t, :, 0] = 1
            Hin[t, :, 1:input_size + 1] = X[t]
            Hin[t, :, input_size + 1:] = prevh
            IFOG[t] = Hin[t].dot(WLSTM)
            IFOGf[t, :, :3 * d] = 1.0 / (1.0 + np.exp(-IFOG[t, :, :3 * d]))
            IFOGf[t, :, 3 * d:] = np.tanh(IFOG[t, :, 3 * d:])
            prevc = C[t - 1] if t > 0 else c0
            C[t] = IFOGf[t, :, d:2 * d] * prevc + IFOGf[t, :, :d] * IFOGf[t, :, 3 * d:]
            Ct[t] = np.tanh(C[t])
            Hout[t] = IFOGf[t, :, 2 * d:3 * d] * Ct[t]
        cache = dict(WLSTM=WLSTM, Hout=Hout, IFOGf=IFOGf, IFOG=IFOG, C=C, Ct=Ct, Hin=Hin, c0=c0, h0=h0)
        return Hout, C[t], Hout[t], cache

    @staticmethod
    def backward(dHout_in, cache, dcn=None, dhn=None):
        WLSTM, Hout, IFOGf, IFOG = cache["WLSTM"], cache["Hout"], cache["IFOGf"], cache["IFOG"]
        C, Ct, Hin, c0 = cache["C"], cache["Ct"], cache["Hin"], cache["c0"]
        n, b, d = Hout.shape
        input_size = WLSTM.shape[0] - d - 1
        dIFOG = np.zeros(IFOG.shape)
        dIFOGf = np.zeros(IFOGf.shape)
        dWLSTM = np.zeros(WLSTM.shape)
        dHin = np.zeros(Hin.shape)
        dC = np.zeros(C.shape)
        dX = np.zeros((n, b, input_size))
        dh0 = np.zeros((b, d))
        dc0 = np.zeros((b, d))
        dHout = dHout_in.copy()
        if dcn is not None:
            dC[n - 1] += dcn.copy()
        if dhn is not None:
            dHout[n - 1] += dhn.copy()
        for t in reversed(range(n)):
            tanhCt = Ct[t]
            dIFOGf[t, :, 2 * d:3 * d] = tanhCt * dHout[t]
            dC[t] += (1 - tanhCt ** 2) * (IFOGf[t, :, 2 * d:3 * d] * dHout[t])
            if t > 0:
                dIFOGf[t, :, d:2 * d] = C[t - 1] * dC[t]
                dC[t - 1] += IFOGf[t, :, d:2 * d] * dC[t]
            else:
                dIFOGf[t, :, d:2 * d] = c0 * dC[t]
                dc0 = IFOGf[t, :, d:2 * d] * dC[t]
            dIFOGf[t, :, :d] = IFOGf[t, :, 3 * d:] * dC[t]
            dIFOGf[t, :, 3 * d:] = IFOGf[t, :, :d] * dC[t]
            dIFOG[t, :, 3 * d:] = (1 - IFOGf[t, :, 3 * d:] ** 2) * dIFOGf[t, :, 3 * d:]
            y = IFOGf[t, :, :3 * d]
            dIFOG[t, :, :3 * d] = (y * (1.0 - y)) * dIFOGf[t, :, :3 * d]
            dWLSTM += np.dot(Hin[t].transpose(), dIFOG[t])
            dHin[t] = dIFOG[t].dot(WLSTM.transpose())
            dX[t] = dHin[t, :, 1:input_size + 1]
            if t > 0:
                dHout[t - 1, :] += dHin[t, :, input_size + 1:]
            else:
                dh0 += dHin[t, :, input_size + 1:]
        return dX, dWLSTM, dc0, dh0
